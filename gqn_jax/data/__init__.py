"""Reading scenes in the released format (shards -> checked scenes) and decoding frames."""
