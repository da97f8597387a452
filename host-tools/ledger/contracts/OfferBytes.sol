// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// The bytes a trading key signs for an offer or a rescission, parsed and checked here; the layout is
/// documented byte by byte in docs/ledger.md ("Signed bytes") and built on the host by
/// host-tools/ledger/offer-bytes.ts. A meter's secure element signs SHA-256 of these bytes (ES256), so
/// the contract hashes them with the SHA-256 precompile and checks the signature with P256VERIFY (0x100).
library OfferBytes {
    uint256 internal constant OFFER_LENGTH = 113;
    uint256 internal constant RESCIND_LENGTH = 128;
    uint256 internal constant SIGNATURE_LENGTH = 64;
    bytes4 internal constant OFFER_TAG = "VGO1";
    bytes4 internal constant RESCIND_TAG = "VGR1";
    uint8 internal constant ASK = 1;
    uint8 internal constant BID = 2;

    struct Offer {
        uint8 side;
        uint32 interval;
        uint32 wh;
        uint32 limitPrice;
        uint32 seq;
        bytes32 keyX;
        bytes32 keyY;
    }

    /// Parses signed offer bytes; ok is false when a field is out of its range or the bytes were made
    /// for another chain or market (so a signature cannot be replayed across deployments).
    function parseOffer(bytes calldata b) internal view returns (bool ok, Offer memory o) {
        if (b.length != OFFER_LENGTH || bytes4(b[0:4]) != OFFER_TAG) return (false, o);
        if (uint64(bytes8(b[4:12])) != block.chainid || address(bytes20(b[12:32])) != address(this)) return (false, o);
        o.side = uint8(b[32]);
        o.interval = uint32(bytes4(b[33:37]));
        o.wh = uint32(bytes4(b[37:41]));
        o.limitPrice = uint32(bytes4(b[41:45]));
        o.seq = uint32(bytes4(b[45:49]));
        o.keyX = bytes32(b[49:81]);
        o.keyY = bytes32(b[81:113]);
        ok = (o.side == ASK || o.side == BID) && o.wh > 0;
    }

    /// Parses signed rescission bytes: tag, chain, market, the digest of the offer withdrawn and the
    /// trading key that signed it (so a rescission travels on its own, like an offer).
    function parseRescind(bytes calldata b) internal view returns (bool ok, bytes32 offerDigest, bytes32 x, bytes32 y) {
        if (b.length != RESCIND_LENGTH || bytes4(b[0:4]) != RESCIND_TAG) return (false, 0, 0, 0);
        if (uint64(bytes8(b[4:12])) != block.chainid || address(bytes20(b[12:32])) != address(this)) return (false, 0, 0, 0);
        return (true, bytes32(b[32:64]), bytes32(b[64:96]), bytes32(b[96:128]));
    }

    /// True when (r, s) over digest verifies under the P-256 key (x, y). P256VERIFY (EIP-7951) returns
    /// 32 bytes ending in 1 on success and nothing on failure, including for malformed keys.
    function verify(bytes32 digest, bytes calldata signature, bytes32 x, bytes32 y) internal view returns (bool) {
        if (signature.length != SIGNATURE_LENGTH) return false;
        (bool called, bytes memory out) = address(0x100).staticcall(abi.encodePacked(digest, signature, x, y));
        return called && out.length == 32 && uint256(bytes32(out)) == 1;
    }
}
