package simulate_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nurture-oss/nurture/internal/simulate"
	"github.com/nurture-oss/nurture/sequences"
)

// A lead misses a demo and rebooks it after the reschedule email.
func ExampleWrite() {
	bundle, err := sequences.Load("../../examples")
	if err != nil {
		fmt.Println(err)
		return
	}
	sc, err := simulate.Parse("no-show.yaml", []byte(`
start: 2026-03-02T00:00:00Z
until: 2026-03-09T00:00:00Z
leads:
  - {id: olivia, email: olivia@onyx.example, traits: {timezone: America/Los_Angeles}}
events:
  - {at: 2026-03-05T17:00:00Z, lead: olivia, type: demo.no_show}
  - {at: +3d19h05m, lead: olivia, type: demo.booked}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	sum, err := simulate.Run(context.Background(), bundle.Content, sc, simulate.Options{}, func(e *simulate.Entry) error {
		line := fmt.Sprint(e.At.Format("Jan 02 15:04"), " ", e.Lead, " ", e.Action, " ", e.Event, " ", e.Step, " ", e.Template, " ", e.Reason)
		fmt.Println(strings.Join(strings.Fields(line), " "))
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println("emails:", sum.Emails)
	// Output:
	// Mar 05 17:00 olivia event demo.no_show
	// Mar 05 17:00 olivia enrolled demo.no_show
	// Mar 05 17:00 olivia waiting demo.no_show cool-off wait
	// Mar 05 18:30 olivia email.sent reschedule demo-reschedule
	// Mar 05 18:30 olivia waiting await-booking wait_for
	// Mar 05 19:05 olivia event demo.booked
	// Mar 05 19:05 olivia completed demo.booked
	// emails: map[demo-reschedule:1]
}
