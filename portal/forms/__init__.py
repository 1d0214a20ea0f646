"""The portal's forms: each validates the shape of what a page sends; the services decide."""
