"""synthetic layer of hccstrat."""
