# Build and install the pgsqlms OCF agent where Pacemaker looks for
# ocf:rust:pgsqlms. `make install DESTDIR=...` stages it for packaging.
PREFIX      ?= /usr
OCF_DIR     ?= $(PREFIX)/lib/ocf/resource.d/rust
MAN7_DIR    ?= $(PREFIX)/share/man/man7
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

uninstall:
	rm -f $(DESTDIR)$(OCF_DIR)/pgsqlms $(DESTDIR)$(MAN7_DIR)/ocf_rust_pgsqlms.7.gz

test:
	bash tests/run.sh
