"""Where media bytes live: local disk or S3, below both tracks and streaming."""
