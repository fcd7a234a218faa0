"""What `vidgate serve` prints on its first start: the new key and a whole first round trip
(create, poll, download), so a new user gets a video without reading further."""

from __future__ import annotations


def first_key_banner(secret: str, host: str, port: int) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown_host}:{port}"
    auth = f'  -H "Authorization: Bearer {secret}"'
    return (
        "\nNo API keys existed, so vidgate created one. It is shown only this once:\n\n"
        f"    {secret}\n\n"
        "Try the first example of the docs:\n\n"
        f"curl -X POST {base}/v1/video/generations \\\n"
        '  -H "Content-Type: application/json" \\\n'
        f"{auth} \\\n"
        "  -d '{\n"
        '    "model": "sora-2",\n'
        '    "prompt": "A serene Japanese garden in spring, with cherry blossoms gently falling",\n'
        '    "size": "1280x720",\n'
        '    "duration": 5\n'
        "  }'\n\n"
        "It answers with a task_id. Ask for the task every few seconds until its \"status\"\n"
        "is \"completed\" (\"progress\" counts up to 100):\n\n"
        f"curl {base}/v1/video/generations/TASK_ID \\\n"
        f"{auth}\n\n"
        "Then download the MP4 from the \"url\" of that answer (a signed link: no key needed):\n\n"
        'curl -o garden.mp4 "URL"\n\n'
        "Or do all three from this folder (the venv's bin must be on PATH):\n\n"
        f"VIDGATE_API_KEY={secret} vidgate generate --base-url {base} \\\n"
        '  "A serene Japanese garden in spring" -o garden.mp4\n'
    )
