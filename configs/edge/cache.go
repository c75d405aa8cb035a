package edge

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// CachePath is where the last good download of org and env is kept:
// {org}-{env}-cache-config.json in the config dir, as edgemicro names it.
func CachePath(dir, org, env string) string {
	return filepath.Join(dir, org+"-"+env+"-cache-config.json")
}

// WriteCache writes d to path atomically: a reader sees the old file or
// the new one, never a part.
func WriteCache(path string, d *Download) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cache-*.json")
	if err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after a rename; cleans up a failure
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing cache: %w", err)
	}
	return nil
}

// ReadCache reads a download written by WriteCache.
func ReadCache(path string) (*Download, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Download
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	if _, err := d.parse(); err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	return &d, nil
}
