"""Ground: the data formats every stage reads (chat rows, preference pairs, text mixed by tokens)."""
