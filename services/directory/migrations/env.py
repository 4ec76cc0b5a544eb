from services.common.migrate import run_env
from services.directory.store import metadata

run_env(metadata)
