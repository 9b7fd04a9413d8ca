"""Azure ML v2 support: the v1->v2 mapping (pure) and nothing that imports azure-ai-ml at import time."""
