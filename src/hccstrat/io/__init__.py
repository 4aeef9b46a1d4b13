"""io layer of hccstrat."""
