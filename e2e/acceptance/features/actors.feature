Feature: Actors
  Every node is an actor with named behaviors. Whatever message it
  receives, it answers with a reply or with a typed refusal the sender can
  act on ("code: detail"), and it keeps running.

  Background:
    Given the nodes alice and bob are running and connected

  Scenario: A public behavior answers anyone
    When alice runs `dms invoke /public/hello --to <bob.peer>`
    Then the command succeeds
    And the output contains "<alice.user>"

  Scenario: A behavior the actor does not have is refused by name
    When alice runs `dms invoke /public/no-such-behavior --to <bob.peer>`
    Then it is refused with "unknown-behavior: root has no behavior /public/no-such-behavior"
    And bob's node still answers

  Scenario: A command the sender holds no capability for is denied
    When alice runs `dms invoke /dms/node/peers/list --to <bob.peer>`
    Then it is refused with "denied: untrusted-root"

  Scenario: Trust for a prefix opens that prefix and nothing else
    Given bob trusts alice's user for "/dms/node/peers"
    When alice runs `dms invoke /dms/node/peers/list --to <bob.peer>`
    Then the command succeeds
    When alice runs `dms invoke /dms/node/onboarding/status --to <bob.peer>`
    Then it is refused with "denied: untrusted-root"

  Scenario: A replayed envelope is refused
    When a peer speaking the wire protocol sends one envelope invoking "/public/hello" to bob twice
    Then the first is answered
    And the second is refused with "replay"

  # The relaying node wraps a user's signed invocation in a new envelope
  # each time; it remembers the invocation's own nonce to use it once.
  Scenario: A user's signed invocation relayed twice is refused the second time
    When a program sends the same signed invocation of "/public/hello" from alice's user to bob twice through alice's API
    Then the first is answered
    And the second is refused with "replay"

  Scenario: A behavior given a malformed payload answers with an error and the node keeps running
    Given bob trusts alice's user for "/dms/node/peers"
    When alice runs `dms invoke /dms/node/peers/ping --to <bob.peer> --data '{"peer": 42}'`
    Then the command fails with exit code 1
    And the error is one line
    And bob's node still answers
