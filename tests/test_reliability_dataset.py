"""Real-file pathologies of NONMEM-style datasets: encodings, separators, decimal commas,
comment lines, long IDs, event types, ragged rows and empty files.

Each case is either read correctly (the parsed values are checked) or refused with one
:class:`~cartpk.DatasetError` whose message is one line naming the column and rows, and whose
``column`` and ``rows`` attributes say the same. The last tests go through ``cartpk check``.
"""

import re

import numpy as np
import pandas as pd
import pytest

from cartpk import DatasetError, Dose, Regimen
from cartpk.cli import main
from cartpk.nonmem import read_nonmem

NAME = "data.csv"


def read(text: str | bytes, **options):
    """``read_nonmem`` on the bytes of ``text`` (UTF-8 when given as str), named ``data.csv``."""
    raw = text.encode() if isinstance(text, str) else text
    return read_nonmem(raw, name=NAME, **options)


def refused(text: str | bytes, message: str, column: str | None, rows: tuple[int, ...]):
    """Reading ``text`` raises exactly ``data.csv: MESSAGE`` with these column and rows."""
    with pytest.raises(DatasetError, match=f"^{re.escape(f'{NAME}: {message}')}$") as info:
        read(text)
    error = info.value
    assert "\n" not in str(error)
    assert (error.column, error.rows) == (column, rows)
    return error


# ------------------------------------------------------------------------------------------------
# IDs


def test_ids_of_17_digits_stay_apart():
    data = read(
        "ID,TIME,DV,AMT\n"
        "12345678901234567,0,.,5\n12345678901234567,1,2,.\n"
        "12345678901234568,0,.,7\n12345678901234568,1,3,.\n"
    )
    assert data.ids == (12345678901234567, 12345678901234568)
    assert data.frame["ID"].tolist() == [12345678901234567] * 2 + [12345678901234568] * 2
    assert data.regimens[12345678901234568] == Regimen.single(7.0, "1")
    observations = data.observations()
    assert observations["ID"].tolist() == [12345678901234567, 12345678901234568]
    assert data.to_frame(data.to_arrays())["ID"].tolist() == observations["ID"].tolist()


def test_ids_of_17_digits_in_a_dataframe():
    frame = pd.DataFrame(
        {"ID": [12345678901234567, 12345678901234568], "TIME": [0.0, 0.0], "DV": [1.0, 2.0]}
    )
    assert read_nonmem(frame).ids == (12345678901234567, 12345678901234568)


def test_long_id_reappearing_is_named_exactly():
    refused(
        "ID,TIME,DV\n12345678901234567,0,1\n12345678901234568,0,1\n12345678901234567,1,1\n",
        "column ID: ID 12345678901234567 reappears after other IDs in row(s) 3 "
        "(records of one subject must be contiguous)",
        "ID",
        (3,),
    )


def test_ordinary_ids_keep_their_order_and_1_0_is_1():
    data = read("ID,TIME,DV\n1,0,1\n1.0,1,2\n2,0,1\n10,0,3\n")
    assert data.ids == (1, 2, 10)
    assert data.frame["ID"].dtype == np.int64
    assert data.frame["ID"].tolist() == [1, 1, 2, 10]


def test_long_ids_with_a_decimal_id():
    refused(
        "ID,TIME,DV\n12345678901234567,0,1\n1.5,0,1\n",
        "column ID: non-integer ID(s) among IDs of 16 or more digits in row(s) 2 "
        "(write every ID as a whole number)",
        "ID",
        (2,),
    )


def test_ids_beyond_int64():
    refused(
        "ID,TIME,DV\n1,0,1\n99999999999999999999,0,1\n",
        "column ID: ID(s) too large (IDs must be below 2^63) in row(s) 2",
        "ID",
        (2,),
    )


# ------------------------------------------------------------------------------------------------
# Event types


def test_other_event_with_an_amount():
    refused(
        "ID,TIME,DV,AMT,EVID\n1,0,.,5,1\n1,1,2,.,0\n1,2,.,5,2\n1,3,.,8,2\n",
        "column AMT: other-event record (EVID=2) with AMT > 0 in row(s) 3, 4 "
        "(a dose needs EVID 1 or 4; with EVID 2 it would be ignored)",
        "AMT",
        (3, 4),
    )


def test_other_event_without_an_amount_is_kept():
    data = read("ID,TIME,DV,AMT,EVID,MDV\n1,0,.,5,1,1\n1,1,2,0,0,0\n1,2,.,0,2,1\n1,3,.,.,2,1\n")
    assert data.frame["EVID"].tolist() == [1, 0, 2, 2]
    assert data.regimens[1] == Regimen((Dose(0.0, 5.0, "1"),))


@pytest.mark.parametrize(
    "evid, amount, message",
    [
        (3, ".", "EVID=3 (reset) is not supported"),
        (4, "5", "EVID=4 (reset and dose) is not supported"),
    ],
)
def test_resets_are_refused(evid, amount, message):
    refused(
        f"ID,TIME,DV,AMT,EVID\n1,0,.,5,1\n1,1,2,.,0\n1,2,.,{amount},{evid}\n",
        f"column EVID: {message} in row(s) 3 (the solver carries each subject's state from "
        "event to event and cannot reset it; give each period after a reset its own ID)",
        "EVID",
        (3,),
    )


# ------------------------------------------------------------------------------------------------
# Separators and decimal commas


def test_semicolons_and_decimal_commas():
    data = read("ID;TIME;DV;AMT\n1;0;.;1,5e6\n1;0,5; 2,25 ;.\n1;1;3.5;.\n")
    assert data.regimens[1] == Regimen.single(1.5e6, "1")
    assert data.observations()["TIME"].tolist() == [0.5, 1.0]
    assert data.observations()["DV"].tolist() == [2.25, 3.5]


def test_tabs_and_decimal_commas():
    data = read("ID\tTIME\tDV\tWT\n1\t0\t1,5\t70,2\n1\t1\t2\t70,2\n")
    assert data.observations()["DV"].tolist() == [1.5, 2.0]
    assert data.observations()["WT"].tolist() == [70.2, 70.2]


def test_decimal_comma_in_a_comma_separated_file():
    refused(
        "ID,TIME,DV\n1,0,1\n1,1,2,5\n",
        "wrong number of fields (the header has 3) in row(s) 2 (line 3, 4 fields)",
        None,
        (2,),
    )


def test_decimal_comma_is_not_a_thousands_separator_in_text():
    refused(
        "ID;TIME;DV\n1;0;1\n1;1;1.234,5\n",
        "column DV: non-numeric value(s) in row(s) 2 (e.g. '1.234,5')",
        "DV",
        (2,),
    )


def test_space_separated_file():
    refused(
        "ID TIME DV\n1 0 1\n",
        "not a comma-, semicolon- or tab-separated file (the header is one column 'ID TIME DV')",
        None,
        (),
    )


# ------------------------------------------------------------------------------------------------
# Comments and empty lines


def test_comment_lines_before_the_header_and_between_rows():
    data = read("# study 101\n# exported 2024-01-01\nID,TIME,DV\n1,0,1\n# visit 2\n\n1,1,2\n")
    assert data.observations()["DV"].tolist() == [1.0, 2.0]
    assert data.frame.index.tolist() == [1, 4]  # data row k is the k-th line after the header


def test_rows_after_a_comment_are_numbered_from_the_header():
    refused(
        "# study 101\nID,TIME,DV\n1,0,1\n# visit 2\n1,-1,2\n",
        "column TIME: negative time in row(s) 3",
        "TIME",
        (3,),
    )


def test_commented_header():
    data = read("#ID,TIME,DV\n1,0,1\n")
    assert data.observations()["DV"].tolist() == [1.0]


def test_only_comment_lines():
    refused(
        "# nothing here\n\n# yet\n", "empty file (no header line, only '#' comment lines)", None, ()
    )


# ------------------------------------------------------------------------------------------------
# Encodings and line endings


def test_byte_order_mark_and_crlf():
    data = read("\ufeffID;TIME;DV\r\n1;0;1,5\r\n\r\n1;1;2\r\n".encode())
    assert data.observations()["DV"].tolist() == [1.5, 2.0]


def test_old_mac_line_endings():
    assert read("ID,TIME,DV\r1,0,1\r1,1,2\r").observations()["DV"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16(encoding):
    refused(
        "ID,TIME,DV\n1,0,1\n".encode(encoding),
        "not a CSV file (UTF-16 text, not UTF-8): save it as UTF-8",
        None,
        (),
    )


def test_latin1():
    refused(
        "ID,TIME,DV,POIDS\n1,0,1,70\n# pesé\n".encode("latin-1"),
        "not a CSV file (not UTF-8 text): byte 0xe9 on line 3; save it as UTF-8",
        None,
        (),
    )


def test_binary_file():
    refused(
        b"\x89PNG\r\n\x1a\n\x00\x00",
        "not a CSV file (not UTF-8 text): byte 0x89 on line 1; save it as UTF-8",
        None,
        (),
    )
    refused(
        b"ID,TIME,DV\n1,0\x00,1\n",
        "not a CSV file (binary content): a NUL byte on line 2",
        None,
        (),
    )


# ------------------------------------------------------------------------------------------------
# Empty files and ragged rows


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file (no header line)"),
        ("\n \r\n\t\n", "empty file (no header line)"),
        ("ID,TIME,DV\n", "no data rows"),
        ("ID,TIME,DV\n\n# no data yet\n", "no data rows"),
    ],
    ids=["empty", "blank lines", "header only", "header and a comment"],
)
def test_empty_files(text, message):
    refused(text, message, None, ())


def test_ragged_rows_name_rows_lines_and_counts():
    refused(
        "# exported\nID,TIME,DV\n1,0,1\n1,1\n1,2,3,4\n1,3,3\n",
        "wrong number of fields (the header has 3) in row(s) "
        "2 (line 4, 2 fields), 3 (line 5, 4 fields)",
        None,
        (2, 3),
    )


def test_many_ragged_rows_are_counted():
    rows = "".join(f"1,{t}\n" for t in range(7))
    error = refused(
        "ID,TIME,DV\n" + rows,
        "wrong number of fields (the header has 3) in row(s) 1 (line 2, 2 fields), "
        "2 (line 3, 2 fields), 3 (line 4, 2 fields), 4 (line 5, 2 fields), "
        "5 (line 6, 2 fields) and 2 more",
        None,
        (1, 2, 3, 4, 5, 6, 7),
    )
    assert len(error.rows) == 7


@pytest.mark.parametrize(
    "text",
    [
        "ID;TIME;DV;\n1;0;1;;\n1;1;2;\n",
        "ID;TIME;DV;\n1;0;1\n1;1;2\n",
        "ID,TIME,DV\n1,0,1,,\n1,1,2\n",
    ],
    ids=["both", "header only", "rows only"],
)
def test_trailing_empty_fields_are_not_ragged(text):
    assert read(text).observations()["DV"].tolist() == [1.0, 2.0]


def test_values_under_an_unnamed_trailing_column():
    refused("ID,TIME,DV,\n1,0,1,\n1,1,2,5\n", "column 4 has no name in the header", None, ())


# ------------------------------------------------------------------------------------------------
# Bytes, paths and names


def test_bytes_read_as_the_path(tmp_path):
    text = "# study\nID;TIME;DV;AMT;CMT\n1;0;.;1,5;1\n1;1;2,5;.;.\n2;0;.;3;2\n2;2;1;.;.\n"
    path = tmp_path / NAME
    path.write_bytes(text.encode())
    from_path = read_nonmem(path)
    from_bytes = read_nonmem(path.read_bytes(), name=str(path))
    pd.testing.assert_frame_equal(from_path.frame, from_bytes.frame)
    assert from_path.regimens == from_bytes.regimens
    assert from_path.source == from_bytes.source == str(path)
    assert from_path.summary() == from_bytes.summary()


def test_bytes_are_named_in_messages():
    with pytest.raises(DatasetError, match=r"^<bytes>: no data rows$"):
        read_nonmem(b"ID,TIME,DV\n")
    assert read_nonmem(b"ID,TIME,DV\n1,0,1\n").source == "<bytes>"


# ------------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize(
    "content, message",
    [
        ("ID,TIME,DV\n1,0,1\n".encode("utf-16"), "not a CSV file (UTF-16 text, not UTF-8)"),
        (b"ID,TIME,DV,AMT,EVID\n1,0,.,5,2\n1,1,2,.,0\n", "column AMT: other-event record"),
        (b"# x\nID;TIME;DV\n1;0;1\n1;1\n", "in row(s) 2 (line 4, 2 fields)"),
        (b"ID,TIME,DV\n12345678901234567,0,1\n2.5,0,1\n", "column ID: non-integer ID(s)"),
        (b"", "empty file (no header line)"),
    ],
    ids=["utf-16", "EVID 2 dose", "ragged", "long IDs", "empty"],
)
def test_cli_check_refuses_with_one_line(content, message, tmp_path, capsys):
    path = tmp_path / NAME
    path.write_bytes(content)
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err + captured.out


def test_cli_check_reads_a_european_export(tmp_path, capsys):
    path = tmp_path / NAME
    path.write_bytes("\ufeff# export\r\nID;TIME;DV;AMT\r\n1;0;.;1,5\r\n1;0,5;2,25;.\r\n".encode())
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{path}: 1 subjects, 2 records") and not captured.err
