"""clinical layer of hccstrat."""
