"""reports layer of hccstrat."""
