"""The endpoint's published contract: reading it, inputs that probe it, and judging the answers."""
