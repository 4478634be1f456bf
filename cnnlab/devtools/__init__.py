"""Developer tools: checks of the project itself (import graph, dvc.yaml code deps)."""
