"""One module per CLI command; see grader.cli."""
