"""radiology layer of hccstrat."""
