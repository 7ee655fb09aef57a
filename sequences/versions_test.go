package sequences_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

func TestVersions(t *testing.T) {
	t.Parallel()
	old := loadBase(t, nil)
	oldSrc := old.Sources[0]
	require.Equal(t, "trial", oldSrc.Sequence)

	// Same bytes, same version: hashes are stable across loads.
	again := loadBase(t, nil)
	require.Equal(t, oldSrc.Version, again.Sources[0].Version)

	// A template the sequence sends changes: a new version.
	tplChanged := loadBase(t, map[string]string{"templates/tips.html": "---\nsubject: Better tips\n---\n<p>Tips</p>\n"})
	require.NotEqual(t, oldSrc.Version, tplChanged.Sources[0].Version)

	// A new sequence file on disk: a new version is current, and the old
	// one can be compiled again and added.
	changed := string(base()["sequences/trial.yaml"].Data)
	changed = strings.Replace(changed, "wait: 2bd", "wait: 3bd", 1) + "in_flight: migrate\n"
	cur := loadBase(t, map[string]string{"sequences/trial.yaml": changed})
	newVersion := cur.Content.Current["trial"]
	require.NotEqual(t, oldSrc.Version, newVersion)

	require.NoError(t, cur.LoadVersions([]sequences.Source{oldSrc, cur.Sources[0]}))
	require.Len(t, cur.Content.Sequences, 2)
	require.Equal(t, newVersion, cur.Content.Current["trial"], "current stays the version on disk")
	for i := 1; i < len(cur.Content.Sequences); i++ {
		a, b := cur.Content.Sequences[i-1], cur.Content.Sequences[i]
		require.True(t, a.ID < b.ID || (a.ID == b.ID && a.Version < b.Version), "sorted by (id, version)")
	}
	var oldSeq = cur.Content.Sequences[0]
	if oldSeq.Version != oldSrc.Version {
		oldSeq = cur.Content.Sequences[1]
	}
	require.Equal(t, oldSrc.Version, oldSeq.Version)
	require.Equal(t, 2, oldSeq.Steps[1].BusinessDays)
	require.Equal(t, 3, cur.Sequence("trial").Steps[1].BusinessDays)

	// A stored version that no longer compiles is an error, not a panic.
	err := cur.LoadVersions([]sequences.Source{{Sequence: "trial", Version: "deadbeef", Raw: []byte("id: trial\nsteps: 3\n")}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "trial")
	err = cur.LoadVersions([]sequences.Source{{Sequence: "other", Version: "v1", Raw: oldSrc.Raw}})
	require.ErrorContains(t, err, `declares id "trial"`)
}
