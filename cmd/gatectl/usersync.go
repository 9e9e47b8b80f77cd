package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gravitational/trace"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/gatehouse/gatehouse/proto/gatehouse/plugin/v1"
	typesv1 "github.com/gatehouse/gatehouse/proto/gatehouse/types/v1"
)

// userSyncCommands are the "gatectl plugins" subcommands of Okta user sync.
func (a *app) userSyncCommands() []*cobra.Command {
	return []*cobra.Command{a.userSyncConfigureCommand(), a.userSyncCredentialsCommand(), a.userSyncTestCommand(), a.userSyncRunCommand(), a.userSyncStatusCommand()}
}

func (a *app) userSyncTestCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "usersync-test NAME",
		Short: "Check that the plugin's Okta org, app ID and stored credential work (one call to Okta)",
		Long: `Call Okta once with the plugin's user sync settings and stored credential,
whether or not user sync is on, and say whether the org answered, the
credential was accepted and the app exists. Fails (exit 1) if not.`,
		Args: oneArg("the plugin's NAME", "gatectl plugins usersync-test okta"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.plugins.TestUserSyncConnection(cmd.Context(), &pluginv1.TestUserSyncConnectionRequest{Name: args[0]})
			if err != nil {
				return trace.Wrap(err)
			}
			if !resp.GetOk() {
				return trace.Errorf("user sync connection test failed: %s", resp.GetMessage())
			}
			_, err = fmt.Fprintf(a.out, "OK: %s\n", resp.GetMessage())
			return trace.Wrap(err)
		},
	}
}

func (a *app) userSyncConfigureCommand() *cobra.Command {
	var (
		orgURL, appID, kind, interval, fullPass string
		disable, switchFromSCIM                 bool
	)
	cmd := &cobra.Command{
		Use:   "usersync-configure NAME (--org-url URL --app-id ID --credential-kind KIND [--interval 10m] [--full-pass-interval 1h] [--switch-from-scim] | --disable)",
		Short: "Turn Okta user sync on (or off) for a plugin",
		Long: `Configure user sync, the pull alternative to SCIM: Gatehouse reads the users
assigned to the Okta app from Okta's management API every --interval and
keeps their accounts in step.

A plugin runs SCIM or user sync, never both. If SCIM is on, pass
--switch-from-scim to turn it off in the same update (its bearer token is
deleted); accounts SCIM created stay and are taken over by user sync.
--disable turns user sync off; the accounts it created stay as they are.

Set the credential with "gatectl plugins usersync-credentials" (before or
after this command: the sync reports a missing credential as its error).`,
		Example: "  gatectl plugins usersync-configure okta --org-url https://example.okta.com --app-id 0oa1b2c3 --credential-kind oauth_private_key_jwt --switch-from-scim",
		Args:    oneArg("the plugin's NAME", "gatectl plugins usersync-configure okta --org-url URL --app-id ID --credential-kind KIND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			got, err := c.plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: args[0]})
			if err != nil {
				return trace.Wrap(err)
			}
			p := proto.Clone(got.GetPlugin()).(*typesv1.Plugin)
			okta := p.GetSpec().GetOkta()
			if okta == nil {
				return trace.BadParameter("plugin %q is not an Okta plugin", args[0])
			}
			us := okta.GetUserSync()
			if us == nil {
				us = &typesv1.OktaUserSyncSettings{}
				okta.UserSync = us
			}
			if disable {
				us.Enabled = false
			} else {
				if okta.GetScimEnabled() {
					if !switchFromSCIM {
						return trace.BadParameter("plugin %q has SCIM on; a plugin runs SCIM or user sync, never both. Pass --switch-from-scim to turn SCIM off (its token is deleted) and user sync on in one update", args[0])
					}
					okta.ScimEnabled = false
				}
				us.Enabled = true
				for _, set := range []struct {
					dst *string
					v   string
				}{{&us.OrgUrl, orgURL}, {&us.AppId, appID}, {&us.CredentialKind, kind}, {&us.Interval, interval}, {&us.FullPassInterval, fullPass}} {
					if set.v != "" {
						*set.dst = set.v
					}
				}
			}
			// The server manages the reference; send it back unchanged.
			if _, err := c.plugins.UpdatePlugin(ctx, &pluginv1.UpdatePluginRequest{Plugin: p}); err != nil {
				return trace.Wrap(err)
			}
			if disable {
				_, err = fmt.Fprintf(a.out, "User sync of plugin %q is off; the accounts it created stay.\n", args[0])
			} else {
				_, err = fmt.Fprintf(a.out, "User sync of plugin %q is on (Okta org %s, app %s). Run it now with: gatectl plugins sync %s\n", args[0], us.GetOrgUrl(), us.GetAppId(), args[0])
			}
			return trace.Wrap(err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&orgURL, "org-url", "", "the Okta org, e.g. https://example.okta.com")
	f.StringVar(&appID, "app-id", "", "the Okta app's ID (0oa...)")
	f.StringVar(&kind, "credential-kind", "", "api_token or oauth_private_key_jwt")
	f.StringVar(&interval, "interval", "", "time between runs (default 10m, at least 1m)")
	f.StringVar(&fullPass, "full-pass-interval", "", "time between full passes (default 1h); unassignments are seen by the next run through Okta's System Log, or only by a full pass without okta.logs.read")
	f.BoolVar(&disable, "disable", false, "turn user sync off")
	f.BoolVar(&switchFromSCIM, "switch-from-scim", false, "turn SCIM off in the same update")
	return cmd
}

func (a *app) userSyncCredentialsCommand() *cobra.Command {
	var tokenFile, clientID, keyFile, keyID string
	cmd := &cobra.Command{
		Use:   "usersync-credentials NAME (--api-token-file FILE | --client-id ID [--key-id KID] --private-key-file FILE)",
		Short: "Store the Okta API credential user sync calls Okta with",
		Long: `Store the credential user sync authenticates to Okta with: an API token
(read from --api-token-file, "-" for stdin) or, preferred, an OAuth 2.0
service app: its client ID and the PEM private key (RSA 2048+ or EC P-256)
whose public key is registered in Okta, granted okta.users.read,
okta.apps.read and okta.groups.read, and okta.logs.read so that unassignments
are seen by the next run rather than the next full pass.

The secret is sealed on the server with the data dir's credentials.key and is
never shown again by any command. Secrets are read from files, never from
flags, so that they stay out of shell history and process lists.`,
		Example: "  gatectl plugins usersync-credentials okta --client-id 0oa9x8y7 --private-key-file okta-sync.pem",
		Args:    oneArg("the plugin's NAME", "gatectl plugins usersync-credentials okta --api-token-file token.txt"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &pluginv1.SetUserSyncCredentialsRequest{Name: args[0], ClientId: clientID, KeyId: keyID}
			switch {
			case tokenFile != "" && (clientID != "" || keyFile != ""):
				return trace.BadParameter("give --api-token-file or --client-id with --private-key-file, not both")
			case tokenFile != "":
				b, err := readSecretFile(tokenFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				req.ApiToken = strings.TrimSpace(string(b))
			case clientID != "" && keyFile != "":
				b, err := readSecretFile(keyFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				req.PrivateKeyPem = string(b)
			default:
				return trace.BadParameter("give --api-token-file FILE, or --client-id ID with --private-key-file FILE")
			}
			c, err := a.client(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.plugins.SetUserSyncCredentials(cmd.Context(), req)
			if err != nil {
				return trace.Wrap(err)
			}
			_, err = fmt.Fprintf(a.out, "Stored the %s credential for plugin %q's user sync (sealed on the server; it cannot be read back).\n", resp.GetKind(), args[0])
			return trace.Wrap(err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tokenFile, "api-token-file", "", `file holding an Okta API token ("-": stdin)`)
	f.StringVar(&clientID, "client-id", "", "the OAuth service app's client ID")
	f.StringVar(&keyFile, "private-key-file", "", `PEM private key of the service app ("-": stdin)`)
	f.StringVar(&keyID, "key-id", "", "kid of the public key registered in Okta (optional)")
	return cmd
}

func readSecretFile(path string, stdin io.Reader) ([]byte, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, trace.ConvertSystemError(err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, trace.BadParameter("%s is empty", path)
	}
	return b, nil
}

func (a *app) userSyncRunCommand() *cobra.Command {
	var (
		full    bool
		noWait  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sync NAME",
		Short: "Run a plugin's Okta user sync now and show its progress and result",
		Long: `Ask the server running the plugin's user sync for a run now, then follow it:
progress while it runs, and the counts when it ends. --full asks for a full
pass (every assigned user, catching unassignments) instead of reading only
what changed. The command fails if the run fails.`,
		Example: "  gatectl plugins sync okta --full",
		Args:    oneArg("the plugin's NAME", "gatectl plugins sync okta"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.checkedClient(ctx)
			if err != nil {
				return err
			}
			resp, err := c.plugins.SyncUsers(ctx, &pluginv1.SyncUsersRequest{Name: args[0], Full: full})
			if err != nil {
				return trace.Wrap(err)
			}
			if noWait {
				_, err := fmt.Fprintf(a.out, "Requested a user sync run of plugin %q (request %s). Follow it with: gatectl plugins status %s\n", args[0], resp.GetTriggerId(), args[0])
				return trace.Wrap(err)
			}
			st, err := a.waitUserSync(ctx, c, args[0], resp.GetTriggerId(), timeout)
			if err != nil {
				return err
			}
			if err := a.printUserSync(&pluginv1.GetUserSyncStatusResponse{State: st}, args[0]); err != nil {
				return err
			}
			if !st.GetLastRunOk() {
				return trace.Errorf("the user sync run failed: %s", st.GetLastError())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&full, "full", false, "run a full pass")
	f.BoolVar(&noWait, "no-wait", false, "only request the run")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the run")
	return cmd
}

// waitUserSync polls the status until the run answering id has ended,
// printing progress (in text format) while it runs.
func (a *app) waitUserSync(parent context.Context, c *apis, name, id string, timeout time.Duration) (*typesv1.OktaUserSyncState, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	// stopped says why the wait ended early. Interrupted (Ctrl-C) is not
	// timed out: the run goes on, and "within 30m" would be false.
	stopped := func() error {
		if parent.Err() != nil {
			return trace.Errorf("stopped waiting for the user sync run; it goes on on the server: follow it with gatectl plugins status %s", name)
		}
		return trace.LimitExceeded("no server finished the requested run within %s: is user sync enabled, and is a server running? (gatectl plugins status %s)", timeout, name)
	}
	lastProgress := ""
	for {
		resp, err := c.plugins.GetUserSyncStatus(ctx, &pluginv1.GetUserSyncStatusRequest{Name: name})
		if err != nil {
			if ctx.Err() != nil {
				return nil, stopped()
			}
			return nil, trace.Wrap(err)
		}
		st := resp.GetState()
		if st.GetLastTriggerId() == id && !st.GetRunning() {
			return st, nil
		}
		if a.format == "text" && st.GetRunning() {
			p := fmt.Sprintf("running on %s: %d users seen, %d created, %d updated, %d locked, %d Okta API calls",
				st.GetHolder(), st.GetUsersSeen(), st.GetUsersCreated(), st.GetUsersUpdated(), st.GetUsersLocked(), st.GetApiCalls())
			if p != lastProgress {
				fmt.Fprintln(a.out, p)
				lastProgress = p
			}
		}
		select {
		case <-ctx.Done():
			return nil, stopped()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (a *app) userSyncStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show a plugin's Okta user sync status: last run, next run, counts, last error",
		Args:  oneArg("the plugin's NAME", "gatectl plugins status okta"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.checkedClient(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := c.plugins.GetUserSyncStatus(cmd.Context(), &pluginv1.GetUserSyncStatusRequest{Name: args[0]})
			if err != nil {
				return trace.Wrap(err)
			}
			return a.printUserSync(resp, args[0])
		},
	}
}

// printUserSync prints the status as text, or the response as JSON/YAML.
func (a *app) printUserSync(resp *pluginv1.GetUserSyncStatusResponse, name string) error {
	if a.format != "text" {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		if err != nil {
			return trace.Wrap(err)
		}
		return printData(a.out, a.format, json.RawMessage(b))
	}
	_, err := io.WriteString(a.out, formatUserSync(resp, name))
	return trace.Wrap(err)
}

func formatUserSync(resp *pluginv1.GetUserSyncStatusResponse, name string) string {
	var b strings.Builder
	if s := resp.GetSettings(); s != nil {
		state := "off"
		if s.GetEnabled() {
			state = "on"
		}
		fmt.Fprintf(&b, "User sync of plugin %q: %s\n", name, state)
		fmt.Fprintf(&b, "  Okta org:       %s\n  app:            %s\n", dash(s.GetOrgUrl()), dash(s.GetAppId()))
		fmt.Fprintf(&b, "  interval:       %s (full pass every %s)\n", orDefault(s.GetInterval(), "10m"), orDefault(s.GetFullPassInterval(), "1h"))
		fmt.Fprintf(&b, "  credential:     %s\n", orDefault(resp.GetCredentialKind(), "none stored"))
	}
	if resp.GetSettings() == nil && resp.GetState() != nil && resp.GetState().GetLastRunStart() == nil {
		fmt.Fprintf(&b, "User sync of plugin %q: not configured (gatectl plugins usersync-configure %s ...)\n", name, name)
		return b.String()
	}
	st := resp.GetState()
	if st.GetLastRunStart() == nil {
		b.WriteString("  last run:       never\n")
		return b.String()
	}
	pass := "incremental"
	if st.GetLastRunFull() {
		pass = "full pass"
	}
	outcome := "ok"
	switch {
	case st.GetRunning():
		outcome = "running"
	case !st.GetLastRunOk():
		outcome = "FAILED"
	}
	fmt.Fprintf(&b, "  last run:       %s, %s, %s (on %s)\n", ts(st.GetLastRunStart()), pass, outcome, dash(st.GetHolder()))
	if st.GetLastRunEnd() != nil {
		fmt.Fprintf(&b, "  took:           %s\n", st.GetLastRunEnd().AsTime().Sub(st.GetLastRunStart().AsTime()).Round(time.Millisecond))
	}
	if st.GetNextRun() != nil {
		fmt.Fprintf(&b, "  next run:       %s\n", ts(st.GetNextRun()))
	}
	fmt.Fprintf(&b, "  users seen:     %d\n  created:        %d\n  updated:        %d\n  locked:         %d\n  not applied:    %d\n  Okta API calls: %d\n",
		st.GetUsersSeen(), st.GetUsersCreated(), st.GetUsersUpdated(), st.GetUsersLocked(), st.GetUsersRefused(), st.GetApiCalls())
	if st.GetLastFullPass() != nil {
		fmt.Fprintf(&b, "  last full pass: %s\n", ts(st.GetLastFullPass()))
	}
	if st.GetLastError() != "" {
		fmt.Fprintf(&b, "  last error:     %s (%s)\n", st.GetLastError(), ts(st.GetLastErrorTime()))
	}
	return b.String()
}
