"""What the HTTP backends share: `answers` (reading upstream answers), `client` (one HTTP
client per channel) and `base` (the HTTP backend base class)."""
