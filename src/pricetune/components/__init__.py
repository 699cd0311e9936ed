"""Built-in components and the contract every component meets."""
