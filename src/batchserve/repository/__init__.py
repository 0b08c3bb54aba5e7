"""The model repository: stores that hold models and versions, and the manager that loads them."""
