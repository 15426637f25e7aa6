"""Placeholder: being written (no components registered yet)."""
