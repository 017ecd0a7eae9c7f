"""Where state lives: the SQLite store and its migrations, and cluster pools on etcd."""
