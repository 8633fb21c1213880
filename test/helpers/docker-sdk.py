#!/usr/bin/env python3
"""Pulls an image with the Docker Python SDK the way Kolla's deploy does, and prints a JSON summary.

docker.APIClient(base_url=unix socket, version='auto', timeout=120).pull(repo, tag, stream=True,
decode=True), iterating over the progress stream and failing on an 'error' key.
Exit status: 0 when the pull succeeded, 1 when it failed (the summary says why).
"""
import argparse
import json
import sys
import time

import docker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--socket', required=True, help='path of the docker unix socket')
    ap.add_argument('--repository', required=True, help='e.g. 127.0.0.1:5000/kolla/base')
    ap.add_argument('--tag', default='latest')
    ap.add_argument('--timeout', type=int, default=120)
    ap.add_argument('--username')
    ap.add_argument('--password')
    args = ap.parse_args()

    summary = {
        'ok': False,
        'sdkVersion': docker.__version__,
        'repository': args.repository,
        'tag': args.tag,
        'events': 0,
        'statuses': [],
        'layers': {},
        'digest': None,
        'error': None,
        'seconds': None,
    }
    start = time.monotonic()
    try:
        client = docker.APIClient(base_url='unix://' + args.socket, version='auto', timeout=args.timeout)
        auth = {'username': args.username, 'password': args.password} if args.username else None
        for event in client.pull(args.repository, tag=args.tag, stream=True, decode=True, auth_config=auth):
            summary['events'] += 1
            if 'error' in event:
                summary['error'] = event['error']
                break
            status = event.get('status', '')
            if 'id' in event and not status.startswith('Pulling from '):
                # The last status seen per layer id ("Pull complete", "Already exists", ...).
                summary['layers'][event['id']] = status
            elif status and status not in summary['statuses']:
                summary['statuses'].append(status)
            if status.startswith('Digest: '):
                summary['digest'] = status[len('Digest: '):]
        else:
            summary['ok'] = True
    except Exception as exc:  # noqa: BLE001 - the summary reports any failure
        summary['error'] = '%s: %s' % (type(exc).__name__, exc)
    summary['seconds'] = round(time.monotonic() - start, 3)
    print(json.dumps(summary))
    return 0 if summary['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
