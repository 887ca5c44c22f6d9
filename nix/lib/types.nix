# Option types the modules share, each no wider than the NixOS options its
# values reach (internal/nixcheck's TestOwnOptionsNoWiderThanNixOS probes
# every option of ours against NixOS's option data).
lib:
let
  inherit (lib) types;
in
{
  # An account or group member name: users.groups.<name>.members takes
  # strings without ":" or new lines; this is the shadow-utils rule for
  # names useradd accepts by default, which cloud-init's users meet too.
  userName = types.strMatching "[a-z_][a-z0-9_-]*";

  # A systemd unit name, as NixOS's unit lists (wantedBy, before, after)
  # take them (nixos/lib/systemd-lib.nix unitNameType).
  unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  # A tz database name ("UTC", "Europe/Berlin", "Etc/GMT+3"): time.timeZone
  # takes a string without spaces.
  timeZone = types.strMatching "[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*";
}
