Feature: Capabilities (UCAN)
  Users grant each other the right to invoke commands with signed tokens
  (UCAN delegations). A node accepts a token only when its chain roots in a
  user it trusts for that command, and a holder can pass on a narrower part
  of what it received, never a wider one. Refusals name the rule that failed.

  Background:
    Given alice, bob, carol and dave each have a home
    And bob trusts alice's user for "/dms"

  Scenario: A granted token is accepted where its root is trusted
    When alice runs `dms cap grant --to <carol.user> --cmd /dms/node/peers -o peers.tok`
    Then the command succeeds
    When bob runs `dms cap verify --cmd /dms/node/peers/list peers.tok`
    Then the command succeeds
    And the output contains "ok: <carol.user> may invoke /dms/node/peers/list here (root <alice.user>"

  Scenario: A token does not cover commands outside its own
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When bob runs `dms cap verify --cmd /dms/node/deployment/new peers.tok`
    Then it is refused with "denied: command-escalation"

  Scenario: A node that does not trust the root refuses the token
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When dave runs `dms cap verify --cmd /dms/node/peers/list peers.tok`
    Then it is refused with "denied: untrusted-root"

  Scenario: A holder passes on a narrower part of its token
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When carol runs `dms cap delegate --from peers.tok --to <dave.user> --cmd /dms/node/peers/list -o list.tok`
    Then the command succeeds
    When bob runs `dms cap verify --cmd /dms/node/peers/list list.tok`
    Then the command succeeds
    And the output contains "<dave.user> may invoke /dms/node/peers/list here (root <alice.user>, 2 delegation(s)"

  Scenario: A holder cannot widen what it received
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When carol runs `dms cap delegate --from peers.tok --to <dave.user> --cmd /dms -o wide.tok`
    Then it is refused with "denied: command-escalation"

  Scenario: Only the token's audience can pass it on
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When dave runs `dms cap delegate --from peers.tok --to <dave.user> --cmd /dms/node/peers/list -o stolen.tok`
    Then it is refused with "denied: audience"
    And the error says "held by <carol.user>"

  Scenario: A policy constrains the arguments of the invocation
    When alice runs `dms cap grant --to <carol.user> --cmd /dms/node/deployment --policy '[["==", ".executor", "wasm"]]' -o wasm.tok`
    Then the command succeeds
    When bob runs `dms cap verify --cmd /dms/node/deployment/new --args '{"executor": "wasm"}' wasm.tok`
    Then the command succeeds
    When bob runs `dms cap verify --cmd /dms/node/deployment/new --args '{"executor": "docker"}' wasm.tok`
    Then it is refused with "denied: policy"

  Scenario: A revoked token is refused wherever the revocation is imported
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When alice runs `dms -o json cap revoke peers.tok`
    Then the command succeeds
    And the output is saved as "revocation.json"
    When bob runs `dms cap import revocation.json`
    Then the command succeeds
    When bob runs `dms cap verify --cmd /dms/node/peers/list peers.tok`
    Then it is refused with "denied: revoked"

  Scenario: The audience of a token cannot revoke it
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When carol runs `dms cap revoke peers.tok`
    Then it is refused with "is neither its issuer nor the issuer of one of its ancestors"

  Scenario: A node lists whom it trusts and the tokens it knows
    Given alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When bob runs `dms cap import peers.tok`
    And bob runs `dms -o json cap list`
    Then the command succeeds
    And the output contains "<alice.user>"
    And the output contains "/dms/node/peers"

  Scenario: A delegated token lets its holder invoke a remote node
    Given the nodes bob and carol are running and connected
    And alice has granted carol's user "/dms/node/peers" in "peers.tok"
    When carol runs `dms invoke /dms/node/peers/list --to <bob.peer> --token peers.tok`
    Then the command succeeds
    And the output contains "<carol.peer>"
