"""Ground: what every stage needs of a model (loading, sizes, generation, perplexity, reward scoring, the vLLM
server process, importing real checkpoints). Imports only shipit's ground (config, errors, registry, device)."""
