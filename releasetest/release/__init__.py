"""The release: manifest, holdout data, serving environment and provenance, validated before deploy."""
