package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gatehouse/gatehouse/cmd/internal/errline"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/gatehouse/gatehouse/proto/gatehouse/audit/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "Search the audit log",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		since time.Duration
		types []string
		limit int
	)
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List audit events, oldest first",
		Long: `List audit events, oldest first: every change to users, roles, locks,
connectors, plugins and tokens, and every denied call.
Needs the list verb on kind "event" (roles editor and auditor have it).`,
		Example: "  gatectl events ls --since 1h\n  gatectl events ls --type plugin.create,plugin.token.rotate --format json",
		Args:    noArgs("filter with --type, --since and --limit"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			if since <= 0 {
				return trace.BadParameter("--since must be a positive duration such as 24h")
			}
			if limit < 0 {
				return trace.BadParameter("--limit must not be negative")
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			req := &auditv1.SearchEventsRequest{
				From:  timestamppb.New(time.Now().Add(-since)),
				Types: types,
			}
			var events []*typesv1.AuditEvent
			for {
				r, err := c.audit.SearchEvents(cmd.Context(), req)
				if err != nil {
					return trace.Wrap(err)
				}
				events = append(events, r.GetEvents()...)
				if r.GetNextPageToken() == "" || (limit > 0 && len(events) >= limit) {
					break
				}
				req.PageToken = r.GetNextPageToken()
			}
			if limit > 0 && len(events) > limit {
				// Keep the newest: that is what someone looking at the log wants.
				events = events[len(events)-limit:]
			}
			switch a.format {
			case "text":
				return printEvents(a, events)
			default:
				raws := make([]json.RawMessage, 0, len(events))
				for _, e := range events {
					r, err := messageJSON(e)
					if err != nil {
						return trace.Wrap(err)
					}
					raws = append(raws, r)
				}
				return printData(a.out, a.format, raws)
			}
		},
	}
	f := ls.Flags()
	f.DurationVar(&since, "since", 24*time.Hour, "how far back to look")
	f.StringSliceVar(&types, "type", nil, "only events of these types, comma-separated (e.g. plugin.create)")
	f.IntVar(&limit, "limit", 0, "show at most this many of the newest events (0: all)")
	cmd.AddCommand(ls)
	return cmd
}

func printEvents(a *app, events []*typesv1.AuditEvent) error {
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tOUTCOME\tRESOURCE\tMESSAGE")
	for _, e := range events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ts(e.GetTime()), e.GetType(), dash(e.GetUser()),
			dash(e.GetOutcome()), dash(e.GetResource()), dash(errline.Join(e.GetMessage()+fieldsText(e.GetFields()))))
	}
	return trace.Wrap(tw.Flush())
}

func fieldsText(f map[string]string) string {
	if len(f) == 0 {
		return ""
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+f[k])
	}
	return " (" + strings.Join(parts, " ") + ")"
}
