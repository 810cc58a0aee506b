"""`shipit ship`: a recipe of stages run as a DAG, cached by content hash, resumable."""
