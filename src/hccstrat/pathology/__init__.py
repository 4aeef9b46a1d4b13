"""pathology layer of hccstrat."""
