"""Reads what the local run needs from a profile (testing/e2e/profiles/*.yaml).

    python profile.py PROFILE_YAML get KEY [ENV_FILE...]
        The value at KEY (dotted, e.g. e2e.transport.emulator), with
        ${NAME} replaced from the KEY=VALUE files given (an emulator
        script's env file). Fails when the key or a name is missing.

    python profile.py PROFILE_YAML check-env
        The head of the profile `gateway-actors check` reads: the size of
        the large payload test and the two crew buckets, as KEY=VALUE
        lines (the storage kind's testing/e2e/storage/<backend>.env
        follows them).

Values under `e2e` are the run's own; `persistence.config` is the crew
chart's, read here so that the tests look for objects where the profile
told the chart to put them.
"""

import re
import sys
from pathlib import Path

import yaml


def read_env(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip()
    return values


def lookup(profile, key):
    value = profile
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            sys.exit(f"profile.py: the profile has no {key}")
        value = value[part]
    return value


def expand(text, env):
    def replace(match):
        name = match.group(1)
        if name not in env:
            sys.exit(f"profile.py: {name} is not set (needed by {text!r})")
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", replace, str(text))


def main():
    profile = yaml.safe_load(Path(sys.argv[1]).read_text())
    command = sys.argv[2]
    if command == "get":
        env = {}
        for path in sys.argv[4:]:
            env.update(read_env(path))
        print(expand(lookup(profile, sys.argv[3]), env))
    elif command == "check-env":
        config = lookup(profile, "persistence.config")
        results = config["bucket"]
        print(f"LARGE_PAYLOAD_KB={lookup(profile, 'e2e.largePayloadKiB')}")
        print(f"RESULTS_BUCKET={results}")
        print(f"ERRORS_BUCKET={config.get('errorsBucket') or results}")
    else:
        sys.exit(f"profile.py: unknown command {command} (get, check-env)")


if __name__ == "__main__":
    main()
