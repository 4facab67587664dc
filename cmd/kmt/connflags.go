package main

import (
	"log/slog"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// connFlags returns the TLS and SASL flags of one Kafka connection, named
// prefix + name: prefix is "" for a command that talks to one cluster,
// "source-" or "destination-" for one that talks to two. Like every flag
// they can be set as KMT_<NAME> environment variables (KMT_SASL_PASSWORD,
// KMT_SOURCE_SASL_PASSWORD, ...); the password is best given that way or as
// a file (a mounted secret), since command lines are visible to every user
// of the machine.
func connFlags(prefix string) []cli.Flag {
	category := "Kafka security"
	if prefix != "" {
		category = strings.TrimSuffix(prefix, "-") + " cluster security"
	}
	return []cli.Flag{
		&cli.BoolFlag{Name: prefix + "tls", Category: category,
			Usage: "connect over TLS, verifying the brokers' certificates (implied by the other --" + prefix + "tls-* flags)"},
		&cli.PathFlag{Name: prefix + "tls-ca-file", Category: category,
			Usage: "PEM file of the CAs that signed the brokers' certificates (default: the system's trusted roots)"},
		&cli.PathFlag{Name: prefix + "tls-cert-file", Category: category,
			Usage: "PEM client certificate, for brokers that require mutual TLS (with --" + prefix + "tls-key-file)"},
		&cli.PathFlag{Name: prefix + "tls-key-file", Category: category,
			Usage: "PEM private key of --" + prefix + "tls-cert-file"},
		&cli.StringFlag{Name: prefix + "tls-server-name", Category: category,
			Usage: "name the brokers' certificates must carry (default: the host of each broker address)"},
		&cli.BoolFlag{Name: prefix + "tls-insecure-skip-verify", Category: category,
			Usage: "UNSAFE, for tests only: accept any broker certificate (encrypted but not authenticated, open to a man in the middle)"},
		&cli.StringFlag{Name: prefix + "sasl-mechanism", Category: category,
			Usage: "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)"},
		&cli.StringFlag{Name: prefix + "sasl-username", Category: category,
			Usage: "SASL user name"},
		&cli.StringFlag{Name: prefix + "sasl-password", Category: category,
			Usage: "SASL password; prefer the environment variable or --" + prefix + "sasl-password-file (command lines are visible to other users)"},
		&cli.PathFlag{Name: prefix + "sasl-password-file", Category: category,
			Usage: "file holding the SASL password, e.g. a mounted Kubernetes secret (one trailing newline is ignored)"},
	}
}

// connFromFlags applies the TLS and SASL flags of connFlags(prefix) to
// base (which carries the brokers, client id and timeout) and validates the
// result. Errors are usage errors (exit 2) naming the flag; no error or log
// line contains the password.
func connFromFlags(c *cli.Context, prefix string, base kafkaconf.Conn) (kafkaconf.Conn, error) {
	cmd := c.Command.Name
	flag := func(name string) string { return "--" + prefix + name }
	conn := base

	files := kafkaconf.TLSFiles{
		CAFile:             c.Path(prefix + "tls-ca-file"),
		CertFile:           c.Path(prefix + "tls-cert-file"),
		KeyFile:            c.Path(prefix + "tls-key-file"),
		ServerName:         c.String(prefix + "tls-server-name"),
		InsecureSkipVerify: c.Bool(prefix + "tls-insecure-skip-verify"),
	}
	useTLS := c.Bool(prefix+"tls") || files != (kafkaconf.TLSFiles{})
	if c.IsSet(prefix+"tls") && !c.Bool(prefix+"tls") && useTLS {
		return conn, exit.Usagef("%s: %s=false contradicts the other %s-* flags", cmd, flag("tls"), flag("tls"))
	}
	if files.InsecureSkipVerify && files.CAFile != "" {
		return conn, exit.Usagef("%s: %s: certificates are not verified, so %s would be ignored; give one of them", cmd, flag("tls-insecure-skip-verify"), flag("tls-ca-file"))
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return conn, exit.Usagef("%s: %s and %s go together (a client certificate and its key)", cmd, flag("tls-cert-file"), flag("tls-key-file"))
	}
	if useTLS {
		cfg, err := files.Config()
		if err != nil {
			name := "tls-ca-file"
			if files.CAFile == "" || strings.Contains(err.Error(), "client") {
				name = "tls-cert-file"
			}
			return conn, exit.Usagef("%s: %s: %v", cmd, flag(name), err)
		}
		conn.TLS = cfg
		if files.InsecureSkipVerify {
			slog.Warn("TLS certificate verification is OFF: the brokers are not authenticated", "flag", flag("tls-insecure-skip-verify"))
		}
	}

	mech, err := kafkaconf.ParseMechanism(c.String(prefix + "sasl-mechanism"))
	if err != nil {
		return conn, exit.Usagef("%s: %s: %v", cmd, flag("sasl-mechanism"), err)
	}
	user := c.String(prefix + "sasl-username")
	pass := c.String(prefix + "sasl-password")
	if file := c.Path(prefix + "sasl-password-file"); file != "" {
		if pass != "" {
			return conn, exit.Usagef("%s: %s and %s: give the password one way only", cmd, flag("sasl-password"), flag("sasl-password-file"))
		}
		if pass, err = kafkaconf.ReadSecretFile(file); err != nil {
			return conn, exit.Usagef("%s: %s: %v", cmd, flag("sasl-password-file"), err)
		}
	}
	switch {
	case mech == "" && (user != "" || pass != ""):
		return conn, exit.Usagef("%s: %s is required with a SASL user name or password (%s)", cmd, flag("sasl-mechanism"), strings.Join(kafkaconf.Mechanisms(), ", "))
	case mech != "" && user == "":
		return conn, exit.Usagef("%s: %s is required with %s %s", cmd, flag("sasl-username"), flag("sasl-mechanism"), mech)
	case mech != "" && pass == "":
		return conn, exit.Usagef("%s: %s %s needs a password: %s, %s or the environment variable %s", cmd, flag("sasl-mechanism"), mech,
			flag("sasl-password-file"), flag("sasl-password"), envName(prefix+"sasl-password"))
	}
	if mech != "" {
		conn.SASL = kafkaconf.SASL{Mechanism: mech, User: user, Password: pass}
		if mech == kafkaconf.Plain && conn.TLS == nil {
			slog.Warn("SASL PLAIN without TLS sends the password unencrypted", "flag", flag("tls"))
		}
	}
	if err := conn.Validate(); err != nil {
		return conn, exit.Usagef("%s: %v", cmd, err)
	}
	return conn, nil
}

// envName is the environment variable of a flag (see addEnvVars).
func envName(flag string) string {
	return "KMT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// splitList splits comma-separated list flag values and drops blanks.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// brokerConn builds the connection of command cmd from its broker list flag
// (brokersFlag), --connect-timeout and the security flags with prefix; errors
// name the flag.
func brokerConn(c *cli.Context, cmd, brokersFlag, prefix, clientID string) (kafkaconf.Conn, error) {
	conn := kafkaconf.Conn{
		Brokers:        splitList(c.StringSlice(brokersFlag)),
		ClientID:       clientID,
		ConnectTimeout: c.Duration("connect-timeout"),
	}
	if len(conn.Brokers) == 0 {
		return conn, exit.Usagef("%s: --%s is required (host:port of at least one broker)", cmd, brokersFlag)
	}
	if err := conn.Validate(); err != nil {
		return conn, exit.Usagef("%s: --%s: %v", cmd, brokersFlag, err)
	}
	if conn.ConnectTimeout <= 0 {
		return conn, exit.Usagef("%s: --connect-timeout %s: must be positive", cmd, conn.ConnectTimeout)
	}
	return connFromFlags(c, prefix, conn)
}
