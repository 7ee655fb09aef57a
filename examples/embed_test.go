package examples_test

import (
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/examples"
	"github.com/nurture-oss/nurture/sequences"
)

// The copy built into the binary is the content on disk, and it loads.
func TestEmbeddedContent(t *testing.T) {
	t.Parallel()
	b, err := sequences.LoadFS(examples.FS)
	require.NoError(t, err)
	require.NotEmpty(t, b.Content.Current)

	onDisk, err := sequences.Load(".")
	require.NoError(t, err)
	require.Equal(t, len(onDisk.Sources), len(b.Sources))
	for i := range b.Sources {
		require.Equal(t, onDisk.Sources[i].Version, b.Sources[i].Version, "sequence %s", b.Sources[i].Sequence)
	}

	n := 0
	require.NoError(t, fs.WalkDir(examples.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		emb, err := fs.ReadFile(examples.FS, path)
		require.NoError(t, err)
		disk, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, string(disk), string(emb), path)
		return nil
	}))
	require.Greater(t, n, 10)

	// Every content file on disk is embedded (scenarios are simulator
	// input, not content).
	require.NoError(t, fs.WalkDir(os.DirFS("."), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "scenarios" {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") || strings.HasPrefix(path, ".") {
			return nil
		}
		_, err = fs.Stat(examples.FS, path)
		require.NoError(t, err, "%s is not embedded: add it to the go:embed line in embed.go", path)
		return nil
	}))
}
