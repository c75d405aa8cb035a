package mgwcmd

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/master"
)

// Files `mgw init` writes into the config dir; the master reads the key
// pair under the names it exports.
const (
	initConfigName     = "mgw.toml"
	initPrivateKeyName = master.PrivateKeyFile
	initPublicKeyName  = master.PublicKeyFile
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a commented mgw.toml and a fresh RS256 signing key pair into the config dir",
		Flags: append(commonFlagsFor(flagConfigDir),
			&cli.BoolFlag{Name: "force", Usage: "overwrite mgw.toml; an existing key pair is kept"},
			&cli.BoolFlag{Name: "force-keys", Usage: "replace the signing key pair too: tokens it signed stop verifying"},
		),
		Action: func(c *cli.Context) error {
			p, err := resolvePaths(c)
			if err != nil {
				return cli.Exit(err, 1)
			}
			wrote, err := writeInit(p.configDir, c.Bool("force"), c.Bool("force-keys"))
			if err != nil {
				return cli.Exit(err, 1)
			}
			fmt.Printf("wrote %s in %s\n", strings.Join(wrote, ", "), p.configDir)
			if !slices.Contains(wrote, initPrivateKeyName) {
				fmt.Printf("kept the signing key pair %s and %s (tokens it signed keep verifying; --force-keys replaces it)\n", initPrivateKeyName, initPublicKeyName)
			}
			return nil
		},
	}
}

// writeInit writes mgw.toml and a key pair into dir and returns the names
// it wrote. Without force it writes nothing when any of them exists. With
// force it overwrites mgw.toml but keeps an existing key pair, which
// tokens were issued with; forceKeys replaces the pair too.
func writeInit(dir string, force, forceKeys bool) ([]string, error) {
	exists := func(name string) (bool, error) {
		_, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	files := []string{initConfigName, initPrivateKeyName, initPublicKeyName}
	if !force && !forceKeys {
		for _, f := range files {
			if ok, err := exists(f); err != nil {
				return nil, err
			} else if ok {
				return nil, fmt.Errorf("%s already exists (--force overwrites mgw.toml and keeps the key pair; --force-keys replaces the key pair)", filepath.Join(dir, f))
			}
		}
	}
	keepKeys := false
	if !forceKeys {
		priv, err := exists(initPrivateKeyName)
		if err != nil {
			return nil, err
		}
		pub, err := exists(initPublicKeyName)
		if err != nil {
			return nil, err
		}
		if priv != pub {
			return nil, fmt.Errorf("only one of %s and %s exists in %s: --force-keys writes a new pair", initPrivateKeyName, initPublicKeyName, dir)
		}
		keepKeys = priv
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating config dir: %w", err)
	}
	type write struct {
		name string
		data []byte
		mode os.FileMode
	}
	writes := []write{{initConfigName, configs.DefaultTOML(), 0o644}}
	if !keepKeys {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generating signing key: %w", err)
		}
		priv, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encoding signing key: %w", err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("encoding public key: %w", err)
		}
		writes = append(writes,
			write{initPrivateKeyName, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600},
			write{initPublicKeyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644})
	}
	var wrote []string
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(dir, w.name), w.data, w.mode); err != nil {
			return wrote, fmt.Errorf("writing %s: %w", w.name, configs.ExplainAccess(err))
		}
		wrote = append(wrote, w.name)
	}
	return wrote, nil
}
