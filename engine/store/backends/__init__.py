"""Store backends: each module is one backend, registered in `engine.store.STORES` by URL scheme."""
