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

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
)

// Files `mgw init` writes into the config dir.
const (
	initConfigName     = "mgw.toml"
	initPrivateKeyName = "jwt-private.pem"
	initPublicKeyName  = "jwt-public.pem"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a commented mgw.toml and a fresh RS256 signing key pair into the config dir",
		Flags: append(commonFlags(), &cli.BoolFlag{Name: "force", Usage: "overwrite existing files"}),
		Action: func(c *cli.Context) error {
			p, err := resolvePaths(c)
			if err != nil {
				return cli.Exit(err, 1)
			}
			if err := writeInit(p.configDir, c.Bool("force")); err != nil {
				return cli.Exit(err, 1)
			}
			fmt.Printf("wrote %s, %s and %s in %s\n", initConfigName, initPrivateKeyName, initPublicKeyName, p.configDir)
			return nil
		},
	}
}

func writeInit(dir string, force bool) error {
	files := []string{initConfigName, initPrivateKeyName, initPublicKeyName}
	if !force {
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return fmt.Errorf("%s already exists (use --force to overwrite)", filepath.Join(dir, f))
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config dir: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating signing key: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding signing key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encoding public key: %w", err)
	}
	writes := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{initConfigName, configs.DefaultTOML(), 0o644},
		{initPrivateKeyName, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600},
		{initPublicKeyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644},
	}
	for _, w := range writes {
		if err := os.WriteFile(filepath.Join(dir, w.name), w.data, w.mode); err != nil {
			return fmt.Errorf("writing %s: %w", w.name, err)
		}
	}
	return nil
}
