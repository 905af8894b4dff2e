"""Veza media backend: the Django project package."""
