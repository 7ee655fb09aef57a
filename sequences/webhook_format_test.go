package sequences_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

func TestWebhookFormat(t *testing.T) {
	t.Parallel()
	const baseHook = `webhooks: [{name: crm, url: "https://crm.example/hook", secret_env: CRM_SECRET}]`
	tests := []struct {
		name    string
		hook    string
		want    string
		problem string
	}{
		{name: "default is standard", hook: baseHook, want: sequences.WebhookFormatStandard},
		{name: "standard", hook: `webhooks: [{name: crm, url: "https://crm.example/hook", secret_env: CRM_SECRET, format: standard}]`, want: sequences.WebhookFormatStandard},
		{name: "hubspot task", hook: `webhooks: [{name: crm, url: "https://crm.example/hook", secret_env: CRM_SECRET, format: hubspot_task}]`, want: sequences.WebhookFormatHubSpotTask},
		{name: "unknown", hook: `webhooks: [{name: crm, url: "https://crm.example/hook", secret_env: CRM_SECRET, format: hubspot}]`,
			problem: `webhook crm format must be one of standard, hubspot_task, got "hubspot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := base()
			src := string(fsys["scoring.yaml"].Data)
			require.Contains(t, src, baseHook)
			fsys = withFiles(map[string]string{"scoring.yaml": strings.Replace(src, baseHook, tt.hook, 1)})
			if tt.problem != "" {
				require.Contains(t, problemsOf(t, fsys), tt.problem)
				return
			}
			b, err := sequences.LoadFS(fsys)
			require.NoError(t, err)
			require.Len(t, b.Notify.Webhooks, 1)
			require.Equal(t, tt.want, b.Notify.Webhooks[0].Format)
		})
	}
}
