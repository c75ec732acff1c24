"""metrics handler."""
