"""pytest fixtures for the provider emulators (filled in by the emulators package)."""
