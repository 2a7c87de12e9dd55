"""plots.py — 작성 중인 모듈(자리 표시).

import 만으로는 아무 일도 일어나지 않고, `python plots.py` 만 main() 을 실행한다.

>>> callable(main)
True
>>> main.__name__
'main'
>>> 2 * 3
6
"""


def main(argv=None):
    """명령줄 진입점(자리 표시)."""
    raise SystemExit("plots.py 는 아직 작성 중입니다.")


if __name__ == "__main__":
    main()
