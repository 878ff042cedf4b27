"""Neural networks: the VideoRef DiT (``dit``) and, later, VAE, encoders and the SR refiner."""
