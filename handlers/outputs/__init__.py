"""outputs handler."""
