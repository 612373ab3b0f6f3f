"""privis.cli."""
