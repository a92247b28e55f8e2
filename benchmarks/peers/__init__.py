"""Peer runners. Files here that run inside a peer's own venv import nothing from the project."""
