"""The procedural world: the vocabulary, scenes, their rendering, captions and prompt parsing."""
