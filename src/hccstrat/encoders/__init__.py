"""encoders layer of hccstrat."""
