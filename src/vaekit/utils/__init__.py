"""Small utilities every part of vaekit uses: the error type, atomic writes, reading what vaekit wrote,
choosing a device, and drawing image grids and curves. Nothing here imports the rest of vaekit."""
