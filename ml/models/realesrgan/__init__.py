"""Real-ESRGAN x4plus: super-resolution with an RRDBNet."""
