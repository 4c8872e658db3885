"""2-D maps of feature vectors (UMAP, PCA) and the per-block depth view."""
