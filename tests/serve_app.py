"""Start the real app with the test-only "toy" backend registered too (used by the browser test)."""
import sys

import tests.fake_backend  # noqa: F401  (registers "toy" before the app builds its tabs)
import app

if __name__ == "__main__":
    sys.exit(app.main(sys.argv[1:]))
