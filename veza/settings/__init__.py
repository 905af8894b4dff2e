"""Settings: `base` reads the environment once; `test` only speeds tests up."""
