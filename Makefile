# Build and install the pgsqlms OCF agent where Pacemaker looks for
# ocf:rust:pgsqlms. `make install DESTDIR=...` stages it for packaging.
PREFIX      ?= /usr
OCF_DIR     ?= $(PREFIX)/lib/ocf/resource.d/rust
MAN7_DIR    ?= $(PREFIX)/share/man/man7
SBIN_DIR    ?= $(PREFIX)/sbin
UNIT_DIR    ?= /lib/systemd/system
DEFAULT_DIR ?= /etc/default
CARGO       ?= cargo
BIN         := target/release/pgsqlms

.PHONY: all build install uninstall test

all: build

build:
	$(CARGO) build --release --locked

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(OCF_DIR)/pgsqlms
	install -d $(DESTDIR)$(MAN7_DIR)
	$(BIN) man | gzip -9n > $(DESTDIR)$(MAN7_DIR)/ocf_rust_pgsqlms.7.gz
	# `pgsqlms status` and `pgsqlms health-server` for operators
	install -d $(DESTDIR)$(SBIN_DIR)
	ln -sf $(OCF_DIR)/pgsqlms $(DESTDIR)$(SBIN_DIR)/pgsqlms
	install -D -m 0644 packaging/systemd/pgsqlms-health.service $(DESTDIR)$(UNIT_DIR)/pgsqlms-health.service
	install -D -m 0644 packaging/systemd/pgsqlms-health.default $(DESTDIR)$(DEFAULT_DIR)/pgsqlms-health

uninstall:
	rm -f $(DESTDIR)$(OCF_DIR)/pgsqlms $(DESTDIR)$(MAN7_DIR)/ocf_rust_pgsqlms.7.gz \
	  $(DESTDIR)$(SBIN_DIR)/pgsqlms $(DESTDIR)$(UNIT_DIR)/pgsqlms-health.service

test:
	bash tests/run.sh
